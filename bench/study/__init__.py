"""The pairwise human study of the DreamBooth paper, as a static page and its analysis.

    records.py   the study and a rater's answers: one typed schema, one writer, one reader
    make.py      `bench study make`: the pairs, the attention checks, the page
    analysis.py  `bench study import`: raters kept or dropped, win rates with intervals over
                 subjects, agreement between raters, a Bradley-Terry ranking (choix)

A study lives in the run store (`<runs>/studies/<study id>/`): `study.json` (its items and
provenance) and `answers/<rater>.json`, one file per rater, as imported.
"""
