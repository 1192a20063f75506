"""Skills as options: call-and-return wrapper, policy-over-skills programs, their sandbox.

Kept import-light on purpose: the sandbox worker imports `maestromotif.options.runtime` and must not
pull in numpy, gymnasium or torch. Import the parts you need from their modules:

- `maestromotif.options.wrapper.OptionsWrapper(env, program)`
- `maestromotif.options.program.load_program(path_or_name)`, `reference_program(name)`
- `maestromotif.options.sandbox.Sandbox`, `InProcessRunner`, `SandboxError` and its subclasses
"""
from maestromotif.skills import SKILLS  # noqa: F401  re-exported
