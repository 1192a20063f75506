# ruff: noqa
# Discovery Hunger (composite): reach the Gnomish Mines, explore there until the agent has eaten (the
# Discoverer eats when hungry), then head for the Oracle level in the Dungeons of Doom without exploring.
# The wrapper sets eaten_food.


class NetHackPlayer(NetHackPlayer):
    oracle_depth = 9

    def __init__(self, max_depth, branch_depth):
        super().__init__(max_depth, branch_depth)
        self.eaten_food = False
        self.explored_gnomish_mines = False

    def select_skill(self, current_skill, dungeon_depth, merchant_precondition, worshipper_precondition):
        # once fed, no more exploring: keep moving in the tour's current direction
        if self.eaten_food and not (merchant_precondition or worshipper_precondition):
            return "descender" if self.direction == "down" else "ascender"
        return super().select_skill(current_skill, dungeon_depth, merchant_precondition,
                     worshipper_precondition)

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if not self.explored_gnomish_mines:
            if branch_number == 2:
                self.explored_gnomish_mines = True
                return "discoverer"
            return self.reach_gnomish_mines(current_skill, dungeon_depth, branch_number,
                                            merchant_precondition, worshipper_precondition)
        if not self.eaten_food:
            return "discoverer"
        if branch_number != 0:
            return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number,
                                               merchant_precondition, worshipper_precondition)
        return "descender" if dungeon_depth < self.oracle_depth else "discoverer"
