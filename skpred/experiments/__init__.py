"""Experiments reproducing the paper's figures, one module per figure.

Run ``python -m skpred.experiments NAME --help``.
"""
