"""The field's classical baselines, computed in the same stage as the LSTM they are compared with:
Kneser-Ney for character models (`kneser_ney`), 1-NN DTW and a summary-feature logistic
regression for sequence classification (`classification`), naive, seasonal naive and ETS for
forecasting (`forecasting`)."""
