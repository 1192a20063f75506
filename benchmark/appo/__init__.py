"""The APPO trainer that every trained method shares (docs/design.md §4.6): trainer.py (settings,
command line, resume, supervision, summary), runner.py (the sample-factory child process), watchdog.py,
patches.py (every change to a third-party library) and wrappers.py (the last two wrappers of every
training env). A method brings an env module that registers its env names and network; nothing here
names a method."""
