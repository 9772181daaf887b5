"""Building blocks of the alias-free Uni-COAL networks (paper Sec. III-C/D).

filters (Kaiser sinc design), resample (upfirdn2d), activation (filtered leaky ReLU), layers
(equalised-lr FC/conv, modulated conv, alias-free and vanilla layers), mapping (mapping networks),
schedule (the per-layer cutoff / stopband / sampling-rate table), shapes (boundary checks).
"""
