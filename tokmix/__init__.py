"""tokmix: corpus-scale tokenization analytics and BPE data-mixture inference.

The data flows one way: corpus -> word tables (``tokmix.bpe.words``) -> pair-count
trajectories (``tokmix.bpe.replay``) -> the mixture LP (``tokmix.solvers``) -> mixtures.
"""

__version__ = "0.1.0"
