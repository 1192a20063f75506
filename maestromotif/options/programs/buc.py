# ruff: noqa
# BUC Identified (interaction): drop items on altars to learn whether they are blessed/uncursed/cursed.
# Whenever the Worshipper may start it does; otherwise the plain exploration tour (no branch policy).


class NetHackPlayer(NetHackPlayer):
    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if worshipper_precondition:
            return "worshipper"
        return self.select_skill(current_skill, dungeon_depth, merchant_precondition, worshipper_precondition)
