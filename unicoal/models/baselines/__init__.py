"""Baselines of the paper's comparisons: one network per file (see docs/training.md).

Modules are imported directly (``from unicoal.models.baselines.scgan import ScganGenerator``);
this package imports nothing, so importing one baseline never builds another. The registry
(:mod:`unicoal.methods`) names each module's ``<name>_config`` / ``build_<name>`` pair.

Slice-wise (Tables I, IV): ``pix2pix`` (Isola et al. 2017), ``pgan`` (Dar et al. 2019),
``autogan`` (AutoGAN-Synthesizer, Hu et al. 2022), ``resvit`` (Dalmaz et al. 2022), ``provogan``
(Yurt et al. 2022). Volumetric (Tables II-IV): ``scgan``, ``arssr``, ``dcsrn``, ``deepresolve``,
``synthsr``. Shared layers live in :mod:`unicoal.nn` (e.g. the pix2pix PatchGAN in
:mod:`unicoal.nn.patchgan`, the perceptual loss in :mod:`unicoal.nn.perceptual`).
"""
