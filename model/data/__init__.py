"""Data: frame sources, dataset readers, and the training-pair pipeline.

* :mod:`model.data.sources` — video files and image folders, decoded on demand by index
  (:func:`~model.data.sources.open_frames`);
* :mod:`model.data.sequences` — annotated sequences in the OTB, VOT, GOT-10k and LaSOT
  layouts (:func:`~model.data.sequences.read_sequence`,
  :func:`~model.data.sequences.read_dataset`).

Submodules are imported where they are used, so that importing this package stays cheap.
"""
