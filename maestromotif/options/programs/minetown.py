# ruff: noqa
# Minetown (navigation): enter the Gnomish Mines, then head down to Minetown without exploring.


class NetHackPlayer(NetHackPlayer):
    minetown_depth = 8  # the deepest Minetown can be

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if branch_number == 2:
            return "descender" if dungeon_depth < self.minetown_depth else "discoverer"
        # not in the Mines yet: the Mines branch policy (the usual tour until the fork is found)
        return self.reach_gnomish_mines(current_skill, dungeon_depth, branch_number, merchant_precondition,
                                        worshipper_precondition)
