"""Observation datasets (collect, human NLD import), preference pairs and their captions."""
