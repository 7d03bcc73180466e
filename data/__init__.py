"""Dataset library: reading and writing problem sets (and, with the curation
stage, sources, filters, dedup and decontamination)."""
