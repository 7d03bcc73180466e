"""The curation stage: raw math sources -> a clean, verifiable, decontaminated RL set.

``sources`` (field mappings) -> ``filters`` (text and verifier filters),
``dedup`` (duplicates, contamination), ``difficulty`` (solve rates) -> ``run``
(the stage: outputs, accounting) -> ``report``.
"""
