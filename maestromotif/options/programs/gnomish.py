# ruff: noqa
# Gnomish Mines (navigation): reach the Mines. Layered on exploration.py; as the released program, the
# whole task is the Mines branch policy (the episode ends on arrival).


class NetHackPlayer(NetHackPlayer):
    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        return self.reach_gnomish_mines(current_skill, dungeon_depth, branch_number, merchant_precondition,
                                        worshipper_precondition)
