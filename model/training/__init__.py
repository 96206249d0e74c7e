"""Training (Sec. 4.1): the training loop (SGD schedule, backbone freezing, DDP, validation curve)
and the tuning of the tracking settings on a validation split. The label assignment (Eq. 2-5)
and the losses (Eq. 6-8) live with the networks that use them (``model.network``).
"""
