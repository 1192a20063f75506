# ruff: noqa
# Minetown (navigation): enter the Gnomish Mines, then head down to Minetown without exploring.


class NetHackPlayer(NetHackPlayer):
    minetown_depth = 8  # the deepest Minetown can be

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if branch_number == 2:
            return "descender" if dungeon_depth < self.minetown_depth else "discoverer"
        if self.branch_depth > 0:  # fork known: go straight for it
            if dungeon_depth > self.branch_depth:
                return "ascender"
            if dungeon_depth <= self.branch_depth:
                return "descender"
        return self.select_skill(current_skill, dungeon_depth, False, False)  # fork unknown: explore to find it
