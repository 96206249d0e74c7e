"""HNSE Studio desktop application (PyQt5 + pyqtgraph). Importing this package imports no Qt."""
