"""Reading data from disk: image and mask files, dataset layouts, synthetic datasets, inspection.

Import the submodules directly (``seglab.data.io``, ``seglab.data.layouts``, ...); nothing is
re-exported here so that ``import seglab.data`` stays cheap and never pulls in torch.
"""
