# ruff: noqa
# Level Up & Sell (composite): stay on DL 1 until XP level 4, then find a shop and sell, then survive.
# The wrapper feeds update_xp_level.


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
            return "ascender" if dungeon_depth > 1 else "discoverer"
        if not self.items_sold:
            if merchant_precondition and dungeon_depth > 1:
                self.items_sold = True
                return "merchant"
            return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number, False, False)
        return "discoverer"  # sold: stay out of trouble for the remaining steps
