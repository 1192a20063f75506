# ruff: noqa
# Transactions (interaction): sell items to shopkeepers. Whenever the Merchant may start
# it does; otherwise the Dungeons of Doom branch policy (where shops are), preconditions passed on.


class NetHackPlayer(NetHackPlayer):
    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if merchant_precondition:
            return "merchant"
        return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number, merchant_precondition,
                                           worshipper_precondition)
