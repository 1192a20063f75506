"""MaestroMotif's skills, in the official code's index order: skill k is the k-th one-hot entry of the
policy's input, the k-th reward model and the k-th option. The one list; everything else imports it.

Standard library only: the options sandbox worker imports it (through maestromotif.options.runtime).
"""
SKILLS = ("discoverer", "descender", "ascender", "worshipper", "merchant")
