"""Studies: experiments over many small models with their own runner (not engine methods).

``alignment_emergence`` trains thousands of tiny MLP pairs per (uniqueness, seed) group as one
vmapped program and measures how their representations align (Tjandrasuwita et al., ICML 2025);
``python -m launch.alignment_study`` runs it from a config.
"""
