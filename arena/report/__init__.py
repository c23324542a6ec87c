"""A run's results for a paper: figures (`figures`) and one self-contained `report.html` (`html`).

    arena report <run>      writes <run>/report.html: each headline metric over rounds, the
                            rounds table, the config, and every tournament's tables and heatmap
"""
