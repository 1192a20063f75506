"""Skill-conditioned APPO training (sample-factory 2) and its deployment policy."""
