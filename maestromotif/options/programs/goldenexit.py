# ruff: noqa
# Golden Exit (composite): tour DL 1-3 of the Dungeons of Doom until 20 gold and 25 kills, then leave
# the dungeon (the Ascender on DL 1 climbs out). The wrapper feeds update_gold/defeat_monster.


class NetHackPlayer(NetHackPlayer):
    def __init__(self, max_depth, branch_depth):
        super().__init__(max_depth, branch_depth)
        self.gold_pieces = 0
        self.monsters_defeated = 0

    def update_gold(self, gold):
        self.gold_pieces = gold

    def defeat_monster(self):
        self.monsters_defeated += 1

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if self.gold_pieces >= 20 and self.monsters_defeated >= 25:
            return "ascender"  # all the way up, and out
        if branch_number == 0:
            return self.select_skill(current_skill, dungeon_depth, merchant_precondition,
                                     worshipper_precondition)
        # any other branch: back to the Dungeons of Doom (the released program handled only the Mines here
        # and returned nothing elsewhere, which is no skill)
        return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number, merchant_precondition,
                                           worshipper_precondition)
