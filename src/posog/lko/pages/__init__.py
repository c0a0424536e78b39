"""The cabinet's web pages (ЛКО): server-rendered Russian pages over the same use cases as the API,
each scoped to the signed-in user's role (see :mod:`posog.lko.scope`)."""
