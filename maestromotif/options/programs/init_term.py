# ruff: noqa
# Reference initiation and termination functions (docs/method.md §5.1), behaving as the released ones.
# The codegen stage asks the coder LLM for its own versions of these two methods; this file is what a
# program runs when the coder's version failed its unit tests, or when a program is used by name.


class NetHackPlayer:
    def skill_precondition(self, char_ascii_encodings, char_ascii_colors, num_items, color_map):
        """(worshipper_precondition, merchant_precondition) from the 7x7 window around the agent.

        Merchant: a shopkeeper-coloured '@' in view; Worshipper: an altar-coloured '_' in view; both
        only when the agent carries an item it did not start with (food and coins excluded).
        """
        shopkeeper_color = color_map.get("@")
        altar_color = color_map.get("_")
        if num_items <= 0:
            return False, False
        chars, colors = (grid.tolist() if hasattr(grid, "tolist") else grid  # a Grid, numpy array or lists
                         for grid in (char_ascii_encodings, char_ascii_colors))
        cells = [(c, k) for row_c, row_k in zip(chars, colors) for c, k in zip(row_c, row_k)]
        merchant = shopkeeper_color is not None and (64, shopkeeper_color) in cells
        worshipper = altar_color is not None and (95, altar_color) in cells
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
        return False
