"""Reports in the cabinet (SPEC §8, issue 5 item 4): a dashboard of the signed-in user's scope — the
country, a region or an organisation — drawn from analytics (asked with the user's scope, never a wider
one), with drill-down from country to region to organisation, and its export to XLSX (native Excel
charts) and CSV."""
