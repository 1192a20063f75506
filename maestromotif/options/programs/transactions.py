# ruff: noqa
# Transactions (interaction): sell items to shopkeepers; shops exist below depth 1 of the Dungeons of Doom.


class NetHackPlayer(NetHackPlayer):
    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if merchant_precondition and dungeon_depth > 1 and branch_number == 0:
            return "merchant"
        return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number, False, False)
