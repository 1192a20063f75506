# ruff: noqa
# Delphi (navigation): reach the Oracle level (DL 5-9, Dungeons of Doom) as fast as possible.


class NetHackPlayer(NetHackPlayer):
    oracle_depth = 9  # the deepest the Oracle can be

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if branch_number == 2:
            return "ascender"  # the Mines are a detour: climb back to the fork
        if dungeon_depth < self.oracle_depth:
            return "descender"
        return "discoverer"
