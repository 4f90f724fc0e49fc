"""Message catalogues, one module per language, each a flat ``key -> template`` dict.

Templates use ``str.format`` fields. Every key in ``en`` must exist in every other
catalogue (a test checks it), so a user never sees a missing sentence.
"""
