"""Quality of a campaign's judgments: consensus per task, agreement, rater signals, adaptive overlap.

``compute`` does the maths over NumPy arrays (calling ``annotations.agreement``,
``annotations.consensus`` and ``annotations.signals``), ``loading`` reads
judgments in bulk, ``services`` writes, ``selectors`` reads for the API,
the lab pages and settlement, ``charts`` draws the dashboard's SVG.
"""
