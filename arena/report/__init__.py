"""A run's results for a paper, and an experiment's over seeds: self-contained HTML pages.

    <run>/report.html       rewritten by every command that adds to the run (`html.refresh_report`;
                            `arena report <run>` by hand): its experiment's claims, each headline
                            metric over rounds, the rounds table, the league (a run with a pool),
                            every tournament, every attack, the config
    <dir>/summary.html      an experiment over seeds (`experiment.write_summary_page`): claims,
                            differences between arms, plots per series, links to each run's report

Modules: `page` (escaping, numbers, censored values, tables), `figures` (matplotlib, no pyplot),
`html` (the run's page), `league` (its League section), `attacks` (its attack sections), `dynamics` (an experiment's
`dynamics.json`, checked), `experiment` (the summary page and a run's experiment section).
"""
