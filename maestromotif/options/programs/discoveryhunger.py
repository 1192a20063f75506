# ruff: noqa
# Discovery Hunger (composite): reach the Gnomish Mines, eat there once hungry (the Discoverer eats),
# then head for the Oracle level in the Dungeons of Doom. The wrapper sets eaten_food.


class NetHackPlayer(NetHackPlayer):
    oracle_depth = 9

    def __init__(self, max_depth, branch_depth):
        super().__init__(max_depth, branch_depth)
        self.eaten_food = False
        self.reached_mines = False

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if branch_number == 2:
            self.reached_mines = True
        if not self.reached_mines:
            return self.reach_gnomish_mines(current_skill, dungeon_depth, branch_number, False, False)
        if not self.eaten_food:
            return "discoverer" if branch_number == 2 else "descender"
        if branch_number == 2:
            return "ascender"
        return "descender" if dungeon_depth < self.oracle_depth else "discoverer"
