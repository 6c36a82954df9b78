"""Accuracy tables that judge cells without training them, shipped with the package.

`nb201`: NAS-Bench-201's own test accuracies (CIFAR-10, CIFAR-100, ImageNet16-120) of every
cell of its space — a transfer proxy when the search runs on other data.
"""
