"""Plotting helpers for the notebooks and the comparison's figures."""
from .comparison import plot_curves, plot_tsne_grid
from .plots import image_grid, plot_history, plot_logs, plot_per_class_accuracy, reference_history, to_display
from .runs import load_run_history, plot_runs, print_reference_results
from .small_multiples import small_multiples
from .tsne import plot_tsne, tsne_2d
from .widgets import interactive_plot

__all__ = ["image_grid", "plot_history", "plot_logs", "plot_per_class_accuracy", "reference_history", "to_display",
           "plot_tsne", "tsne_2d", "interactive_plot", "plot_curves", "plot_tsne_grid", "small_multiples",
           "load_run_history", "plot_runs", "print_reference_results"]
