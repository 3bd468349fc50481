some avg10=0.30 avg60=0.18 avg300=0.35 total=3779079
full avg10=0.02 avg60=0.09 avg300=0.29 total=3195852
