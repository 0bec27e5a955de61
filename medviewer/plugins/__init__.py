"""AI plugins: the author-facing API (``medviewer.plugins.api``), discovery (``registry``), the
background runner (``runner``) and the trust list for plugins that run code from a folder
(``trust``). Nothing in this package imports torch, MONAI or Qt at module level."""
