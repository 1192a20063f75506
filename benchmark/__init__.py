"""The benchmark: NetHack env of the paper, task suite, evaluation harness, statistics and report.

It never imports a method: methods are named in conf/method/*.yaml and built by Hydra's instantiate.
"""
