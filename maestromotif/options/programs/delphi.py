# ruff: noqa
# Delphi (navigation): reach the Oracle level (DL 5-9, Dungeons of Doom) as fast as possible: out of
# any other branch first, then straight down to the deepest the Oracle can be, then the usual tour.


class NetHackPlayer(NetHackPlayer):
    oracle_depth = 9  # the deepest the Oracle can be

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if branch_number != 0:
            return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number,
                                               merchant_precondition, worshipper_precondition)
        if dungeon_depth < self.oracle_depth:
            return "descender"
        return self.select_skill(current_skill, dungeon_depth, merchant_precondition, worshipper_precondition)
