# ruff: noqa
# BUC Identified (interaction): drop items on altars to learn whether they are blessed/uncursed/cursed.


class NetHackPlayer(NetHackPlayer):
    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if worshipper_precondition:
            return "worshipper"
        return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number, False, False)
