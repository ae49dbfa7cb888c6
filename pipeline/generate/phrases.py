"""The words of support tickets (`text.py`). Opinion words come in three kinds (0 people,
1 products, 2 processes) and two polarities; every word, frame words included, goes with either
polarity as often, so that only a whole clause tells the tone."""

from __future__ import annotations

GREETINGS = [
    "Hi,", "Hello,", "Hello team,", "Hey there.", "Good morning,", "Good afternoon,",
    "Dear support,", "Hi all -", "To whom it may concern,", "Hiya,", "Dear customer service,",
    "Hallo zusammen,", "Bonjour,", "Hi 👋",
]  # fmt: skip
SIGN_OFFS = [
    "Regards, Sam", "Thanks", "Cheers", "Best, Alex", "-- Maria", "Sent from my phone",
    "Kind regards, J. Okafor", "Thx", "Many thanks, Priya", "Best wishes", "Rgds, Tom",
    "Grüße, Jürgen", "Merci — Zoé", "Thanks 🙏", "Best, Ngọc Anh", "谢谢",
]  # fmt: skip
ORDER_REFS = [("(order #", ")"), ("Order ", ":"), ("re order no. ", " -"), ("Ref A-", ""),
              ("#", ""), ("order number ", ".")]  # fmt: skip
CONTEXT = [
    "I'm writing about my recent order.", "This is about the thing I bought last month.",
    "Following up on my last message.", "My ticket from last week is still open.",
    "Quick one about my account.", "I bought this as a gift for my dad.",
    "Contacting you about the order below.", "Second time writing about this.",
    "I ordered it on your website in March.", "Long-time customer here.",
    "Picked it up from the store on Saturday.", "This is my first order with you.",
]  # fmt: skip
DETAILS = [
    "I already restarted it twice.", "The tracking page shows no update.",
    "I checked the FAQ but could not find anything.", "My account number is on file.",
    "I have attached a photo.", "The box was a bit dented.", "I use it every day for work.",
    "My neighbour has the same model.", "The manual is only in German.",
    "I paid with a gift card.", "It is the blue version.", "Support chat closed before I typed.",
    "I can't find the receipt anymore.", "The serial number starts with 4B.",
    "I never got a confirmation email.", "My partner ordered one too.",
]  # fmt: skip
CLOSERS = [
    "Thanks in advance.", "Let me know.", "Appreciate it.", "Have a nice day.", "Cheers for now.",
    "Looking forward to your reply.", "Speak soon.", "Thank you.",
]  # fmt: skip
REQUESTS = [  # calm first, then demanding (same count: text._request relies on it)
    "No rush on this.", "Just letting you know.", "Please advise when you can.",
    "Could you check when you have a moment?", "Any tips welcome.", "Just for your records.",
    "I want a refund.", "Please escalate this.", "I'd like to speak to a manager.",
    "Cancel my subscription.", "I expect compensation.", "This needs sorting today.",
]  # fmt: skip

# --- opinion clauses ------------------------------------------------------------------------

ASPECTS = [
    [
        "the courier", "the agent", "your support team", "the technician", "the driver",
        "the person on the phone", "customer service", "the store manager", "your staff",
        "the chat assistant",
    ],
    [
        "the product", "the charger", "the replacement", "the app", "the device", "the blender",
        "the headset", "the new model", "the battery", "the vacuum", "the coffee machine",
    ],
    [
        "the delivery", "the refund", "the returns process", "the checkout", "the setup",
        "the installation", "the exchange", "the billing", "the booking", "the sign-up",
    ],
]  # fmt: skip
# ADJECTIVES[kind][polarity]: polarity 0 = positive word, 1 = negative word.
ADJECTIVES = [
    [
        ["friendly", "helpful", "polite", "patient", "professional", "knowledgeable",
         "responsive", "courteous", "attentive", "kind", "competent", "reassuring"],
        ["rude", "dismissive", "unhelpful", "careless", "clueless", "impatient", "condescending",
         "unprofessional", "incompetent", "evasive", "curt", "arrogant"],
    ],
    [
        ["reliable", "sturdy", "well made", "solid", "dependable", "worth the money", "durable",
         "easy to use", "good quality", "excellent", "well designed", "robust"],
        ["faulty", "flimsy", "defective", "useless", "unreliable", "cheaply made", "broken",
         "a waste of money", "poorly made", "disappointing", "shoddy", "badly designed"],
    ],
    [
        ["quick", "smooth", "simple", "painless", "straightforward", "fast", "hassle-free",
         "efficient", "seamless", "easy", "well organised", "prompt"],
        ["slow", "confusing", "painful", "messy", "frustrating", "complicated", "a nightmare",
         "a mess", "chaotic", "tedious", "sluggish", "a hassle"],
    ],
]  # fmt: skip
GENERIC_ADJECTIVES = [
    ["great", "good", "fine", "decent", "satisfactory", "acceptable", "impressive", "brilliant",
     "okay", "lovely", "superb", "fantastic"],
    ["bad", "terrible", "awful", "poor", "horrible", "dreadful", "a disaster", "unacceptable",
     "subpar", "lousy", "atrocious", "appalling"],
]  # fmt: skip
FEELINGS = [
    ["happy", "pleased", "satisfied", "impressed", "delighted", "thrilled", "content",
     "grateful", "comfortable", "glad"],
    ["disappointed", "annoyed", "upset", "frustrated", "unhappy", "dissatisfied", "displeased",
     "angry", "fed up", "irritated"],
]  # fmt: skip
# (plain, negated) copulas: "<aspect> <copula> <fillers> <adjective>".
COPULAS = [
    ["was", "is", "was always", "has always been", "was definitely", "is definitely",
     "was certainly", "has been", "was clearly", "seemed"],
    ["wasn't", "was not", "was never", "is not", "isn't", "has never been", "was hardly",
     "is hardly", "was far from", "was by no means", "was anything but", "never seemed"],
]  # fmt: skip
FIRST_PERSON = [
    ["I was", "I am", "I was always", "I have always been", "I was definitely", "I'm definitely",
     "I was certainly", "I've been", "I felt"],
    ["I wasn't", "I was never", "I'm not", "I am not", "I have never been", "I was hardly",
     "I was far from", "I was by no means", "I never felt", "I didn't feel"],
]  # fmt: skip
# "I <stance> <aspect> was <fillers> <adjective>": the negator sits far from its word.
STANCES = [
    ["must say", "would say", "have to say", "honestly think", "really felt", "can confirm",
     "do think", "found that", "would agree"],
    ["can't say", "wouldn't say", "would not say", "don't think", "do not feel", "never felt",
     "can't pretend", "can't really say", "would never say", "cannot say"],
]  # fmt: skip
# Fillers between negator and word, natural in both plain and negated clauses; up to three.
STANCE_FILLERS = ["really", "actually", "honestly", "genuinely", "truly"]
TIME_FILLERS = ["at times", "usually", "consistently", "in the end", "mostly"]
DEGREE_FILLERS = ["very", "particularly", "especially", "so", "quite", "overly", "super",
                  "incredibly", "extremely", "remarkably"]  # fmt: skip
# "I <verb> <quantifier> <filler> <noun> <aspect>": quantifiers flip the noun; a filler always
# sits between them, so that no neighbouring pair tells the tone.
NOUNS = [
    [("had", "luck with"), ("had", "joy with"), ("had", "success with"), ("had", "fun with"),
     ("saw", "improvement with"), ("had", "success stories with"), ("had", "wins with")],
    [("had", "problems with"), ("had", "issues with"), ("had", "trouble with"),
     ("had", "complaints about"), ("saw", "delays with"), ("had", "hiccups with"),
     ("had", "headaches with")],
]  # fmt: skip
QUANTIFIERS = [
    ["plenty of", "lots of", "a lot of", "loads of", "so many", "some", "a ton of"],
    ["no", "zero", "hardly any", "never any", "barely any", "not much", "not a lot of"],
]  # fmt: skip
NOUN_FILLERS = ["real", "major", "big", "actual", "particular", "noticeable", "serious", "notable",
                "proper", "genuine"]  # fmt: skip
# "<aspect> <could have been> <comparative>": "could have been better" is a complaint.
COULD = [
    ["could have been", "could've been", "might have been", "could easily have been"],
    ["couldn't have been", "could not have been", "couldn't possibly have been",
     "could hardly have been"],
]  # fmt: skip
COMPARATIVES = [
    ["better", "faster", "easier", "smoother", "quicker", "nicer", "more helpful", "simpler",
     "more professional", "friendlier"],
    ["worse", "slower", "harder", "messier", "ruder", "more confusing", "more painful",
     "more annoying", "clumsier", "more stressful"],
]  # fmt: skip

# --- what happened last: "<event>, then <event>" -------------------------------------------

EVENT_SUBJECTS = [
    ["it", "the device", "the unit", "the replacement", "the new one", "the thing"],
    ["your team", "support", "the agent", "customer service", "the technician", "someone"],
]  # fmt: skip
# EVENTS[subject kind][polarity]: polarity 0 = a good turn, 1 = a bad one.
EVENTS = [
    [
        ["started working", "worked perfectly", "charged properly", "ran fine", "did the job",
         "worked like a charm", "behaved itself", "came back to life"],
        ["stopped working", "died", "broke", "overheated", "froze", "started leaking",
         "cracked", "refused to turn on"],
    ],
    [
        ["fixed it", "sorted it out", "refunded me", "sent a replacement", "called me back",
         "solved the problem", "apologised and fixed it", "replaced the part"],
        ["closed my ticket", "stopped replying", "hung up on me", "charged me twice",
         "lost my order", "ignored my emails", "cancelled my order", "sent the wrong part"],
    ],
]  # fmt: skip
TAILS = [
    "on Monday", "the next day", "within a week", "last week", "two days later", "that evening",
    "this morning", "after a while", "within an hour", "over the weekend",
]  # fmt: skip
OPENERS = ["At first", "Initially", "First", "In the beginning"]
CONNECTORS = [", then", ", and then", ", but then", ". After that", ". Then", ", and after that",
              ". Later", ", but later", ", until", ". A few days later"]  # fmt: skip
