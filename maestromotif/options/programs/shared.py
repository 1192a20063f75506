# ruff: noqa
# Initiation and termination functions shared by every program (method.md §1.6), and the per-episode
# settings. Appended last, so they replace any version a generated program wrote (as the official
# combine.py does). SETTINGS is defined at the top of the composed program.


def _flat(grid):
    """The cells of a 2-D window, row by row (a Grid, a numpy array or a list of lists)."""
    rows = grid.tolist() if hasattr(grid, "tolist") else grid
    return [cell for row in rows for cell in row]


class NetHackPlayer(NetHackPlayer):
    def set_initial_values(self):
        self.skill = "discoverer"
        low, high = SETTINGS["max_depth"]
        self.max_depth = random.randint(low, high)
        # training: half the episodes explore towards the Gnomish Mines (tasks do not use self.mines)
        self.mines = random.randint(0, 1) if SETTINGS["random_branch"] else 0
        self.discoverer_skill_steps = SETTINGS["discoverer_skill_steps"]
        self.merchant_skill_steps = 20 * self.discoverer_skill_steps
        self.worshipper_skill_steps = 20 * self.discoverer_skill_steps

    def skill_precondition(self, char_ascii_encodings, char_ascii_colors, num_items, color_map):
        """(worshipper_precondition, merchant_precondition) from the 7x7 window around the agent.

        Merchant: a shopkeeper-coloured '@' in view; Worshipper: an altar-coloured '_' in view; both
        only when the agent carries an item it did not start with (food and coins excluded).
        """
        if num_items <= 0:
            return False, False
        shopkeeper_color = color_map.get("@")
        altar_color = color_map.get("_")
        cells = list(zip(_flat(char_ascii_encodings), _flat(char_ascii_colors)))
        merchant = (64, shopkeeper_color) in cells
        worshipper = (95, altar_color) in cells
        return worshipper, merchant

    def skill_termination(self, skill, skill_time, current_depth, previous_depth, preconditions):
        if any(preconditions):
            return True  # hand over to the policy, which may start the Merchant or the Worshipper
        if skill == "discoverer":
            return skill_time >= self.discoverer_skill_steps
        if skill == "descender":
            return current_depth > previous_depth
        if skill == "ascender":
            return current_depth < previous_depth
        if skill == "merchant":
            return skill_time >= self.merchant_skill_steps
        if skill == "worshipper":
            return skill_time >= self.worshipper_skill_steps
        return True
