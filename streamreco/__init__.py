"""streamreco: streaming, real-time recommendations for web shops."""

__version__ = "0.1.0"
