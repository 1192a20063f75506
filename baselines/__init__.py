"""Baselines: one module per method, each named by conf/method/<name>.yaml."""
