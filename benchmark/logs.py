"""One log format for every stage's command line (library code only creates loggers)."""
import logging

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Configure the root logger for a command-line entry point."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
