# ruff: noqa
# Gnomish Mines (navigation): reach the Mines. Layered on exploration.py.


class NetHackPlayer(NetHackPlayer):
    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if branch_number == 2:
            return "discoverer"  # arrived: keep exploring the Mines
        return self.reach_gnomish_mines(current_skill, dungeon_depth, branch_number, merchant_precondition,
                                        worshipper_precondition)
