# ruff: noqa
# Reference training-time policy over skills (docs/method.md §5.2), written for this benchmark to behave as
# the released one: explore each level, go down to max_depth, then back up to depth 1, and repeat; in
# half the episodes (self.mines) go through the Gnomish Mines, otherwise stay in the Dungeons of Doom.
import random


class NetHackPlayer:
    def __init__(self, max_depth, branch_depth):
        self.max_depth = max_depth
        self.branch_depth = branch_depth  # -2 until the environment finds the Mines fork
        self.direction = "down"

    # The unit tests of the coder prompts call these two; in the game the preconditions come
    # from skill_precondition (init_term.py or the coder's version).
    def merchant_precondition(self):
        return False

    def worshipper_precondition(self):
        return False

    def select_skill(self, current_skill, dungeon_depth, merchant_precondition, worshipper_precondition):
        if merchant_precondition:
            return "merchant"
        if worshipper_precondition:
            return "worshipper"
        if current_skill != "discoverer":
            return "discoverer"  # every new level (or finished interaction) is explored first
        # The level is explored: move on, turning around at the ends of the range [1, max_depth].
        if self.direction == "down" and dungeon_depth >= self.max_depth:
            self.direction = "up"
        elif self.direction == "up" and dungeon_depth <= 1:
            self.direction = "down"
        return "descender" if self.direction == "down" else "ascender"

    # At the Mines fork (branch_depth, in the Dungeons of Doom) both branch policies always take a down
    # staircase, whatever the direction of the tour and the preconditions, as the released policy does;
    # the level just below the fork is left at once when it is in the wrong branch. Elsewhere (or while
    # the fork is unknown, branch_depth = -2) the usual tour of select_skill goes on.
    def reach_gnomish_mines(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                            worshipper_precondition):
        if branch_number == 0 and dungeon_depth == self.branch_depth:
            return "descender"  # either staircase: the Descender cannot tell which branch it leads to
        if branch_number == 0 and dungeon_depth == self.branch_depth + 1:
            return "ascender"  # landed in the Dungeons of Doom: back to the fork, try again
        return self.select_skill(current_skill, dungeon_depth, merchant_precondition, worshipper_precondition)

    def reach_dungeons_of_doom(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                               worshipper_precondition):
        if dungeon_depth == self.branch_depth:
            return "ascender" if branch_number == 2 else "descender"
        if branch_number == 2 and dungeon_depth == self.branch_depth + 1:
            return "ascender"  # landed in the Mines: back to the fork, try again
        return self.select_skill(current_skill, dungeon_depth, merchant_precondition, worshipper_precondition)

    def perform_task(self, current_skill, dungeon_depth, branch_number, merchant_precondition,
                     worshipper_precondition):
        if self.mines:
            return self.reach_gnomish_mines(current_skill, dungeon_depth, branch_number,
                                            merchant_precondition, worshipper_precondition)
        return self.reach_dungeons_of_doom(current_skill, dungeon_depth, branch_number, merchant_precondition,
                                           worshipper_precondition)
