"""Analysis of stored scores: every statistic (`stats`), a run's scores as a table with its
intervals (`results`), paired comparisons between runs (`compare`)."""
