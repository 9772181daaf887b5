"""Training of Uni-COAL and the learned baselines (paper Sec. III-G, IV-B).

``loop`` (the trainer), ``losses`` (non-saturating GAN + R1, L1, SAM, blur schedule), ``ema``,
``schedule`` (constant then linear decay), ``checkpoint`` (atomic, weights-only), ``logging``
(progress bar, CSV, TensorBoard), ``distributed`` (torchrun, gradient averaging), ``config``.
Import the submodules directly; this package imports nothing heavy.
"""
