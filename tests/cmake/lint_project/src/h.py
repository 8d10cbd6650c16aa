x = "h"
