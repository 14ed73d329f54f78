"""Quality assurance: measures of a registration (Jacobian, Dice, TRE, inverse
consistency, similarity), the one-call evaluation and the filed HTML report."""
