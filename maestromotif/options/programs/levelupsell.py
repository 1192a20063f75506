# ruff: noqa
# Level Up & Sell (composite): explore the current level until XP level 4, then find a shop (Dungeons of
# Doom branch policy) and sell once, then the usual tour for the remaining steps. The wrapper feeds
# update_xp_level.


class NetHackPlayer(NetHackPlayer):
    def __init__(self, max_depth, branch_depth):
        super().__init__(max_depth, branch_depth)
        self.xp_level = 1
        self.items_sold = False

    def update_xp_level(self, xp_level):
        self.xp_level = xp_level

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if self.xp_level < 4:
            return "discoverer"
        if not self.items_sold:
            if merchant_precondition:
                self.items_sold = True
                return "merchant"
            return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number,
                                               merchant_precondition, worshipper_precondition)
        return self.select_skill(current_skill, dungeon_depth, merchant_precondition, worshipper_precondition)
