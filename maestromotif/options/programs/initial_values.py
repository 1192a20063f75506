# ruff: noqa
# The per-episode settings every program ends with (docs/method.md §5.2 training, §9.2 deployment), as the
# official combine.py appended initial_values.txt last. SETTINGS is defined at the top of the program.


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
