"""beginner_source/nlp (Robert Guthrie's NLP tutorials): the tensor and autograd intro with
autograd.Variable, a bag-of-words classifier, an N-gram language model; the LSTM tagger and
the BiLSTM-CRF need nn.LSTM."""

from __future__ import annotations

from tutorial_harness import Result, script


@script("nlp/pytorch_tutorial", trains=False)
def pytorch_tutorial(torch, compile) -> Result:
    """torch.Tensor(list), indexing, randn, cat, view, autograd.Variable, grad_fn, .data."""
    res = Result()
    autograd = torch.autograd
    torch.manual_seed(1)
    v = torch.Tensor([1., 2., 3.])
    m = torch.Tensor([[1., 2., 3.], [4., 5., 6]])
    t = torch.Tensor([[[1., 2.], [3., 4.]], [[5., 6.], [7., 8.]]])
    for x in (v, m, t, v[0], m[0], t[0]):
        res.value(x)
    res.value(torch.LongTensor([1, 2]))
    res.value(tuple(torch.randn((3, 4, 5)).shape))
    res.value(torch.Tensor([1., 2., 3.]) + torch.Tensor([4., 5., 6.]))
    res.value(tuple(torch.cat([torch.randn(2, 5), torch.randn(3, 5)]).shape))
    res.value(tuple(torch.cat([torch.randn(2, 3), torch.randn(2, 5)], 1).shape))
    x = torch.randn(2, 3, 4)
    res.value(tuple(x.view(2, 12).shape))
    res.value(tuple(x.view(2, -1).shape))
    x = autograd.Variable(torch.Tensor([1., 2., 3]), requires_grad=True)
    res.value(x.data)
    y = autograd.Variable(torch.Tensor([4., 5., 6]), requires_grad=True)
    z = x + y
    res.value(z.data)
    res.value(z.grad_fn is not None)
    s = z.sum()
    res.value(s)
    s.backward()
    res.value(x.grad)
    var_x = autograd.Variable(torch.randn((2, 2)), requires_grad=True)
    var_y = autograd.Variable(torch.randn((2, 2)), requires_grad=True)
    var_z = var_x + var_y
    new_var_z = autograd.Variable(var_z.data)
    res.value(new_var_z.grad_fn is None)
    return res


def _bow(torch):
    nn, F = torch.nn, torch.nn.functional

    class BoWClassifier(nn.Module):
        def __init__(self, num_labels, vocab_size):
            super().__init__()
            self.linear = nn.Linear(vocab_size, num_labels)

        def forward(self, bow_vec):
            return F.log_softmax(self.linear(bow_vec), dim=1)

    return BoWClassifier


@script("nlp/deep_learning_tutorial")
def deep_learning_tutorial(torch, compile) -> Result:
    """Logistic regression on bag-of-words vectors (indexed +=), LongTensor targets, NLLLoss,
    SGD(lr=0.1), model.zero_grad() per instance."""
    res = Result()
    autograd, F = torch.autograd, torch.nn.functional
    torch.manual_seed(1)
    lin = torch.nn.Linear(5, 3)
    res.value(tuple(lin(autograd.Variable(torch.randn(2, 5))).shape))
    res.value(F.relu(torch.tensor([[-1.0, 2.0]])))
    data = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.5])
    res.value(F.softmax(data, dim=0))
    res.value(F.softmax(data, dim=0).sum())
    res.value(F.log_softmax(data, dim=0))
    train = [("me gusta comer en la cafeteria".split(), "SPANISH"),  # noqa: SIM905
             ("Give it to me".split(), "ENGLISH"),  # noqa: SIM905
             ("No creo que sea una buena idea".split(), "SPANISH"),  # noqa: SIM905
             ("No it is not a good idea to get lost at sea".split(), "ENGLISH")]  # noqa: SIM905
    test = [("Yo creo que si".split(), "SPANISH"),  # noqa: SIM905
            ("it is lost on me".split(), "ENGLISH")]  # noqa: SIM905
    word_to_ix = {}
    for sent, _ in train + test:
        for word in sent:
            if word not in word_to_ix:
                word_to_ix[word] = len(word_to_ix)
    label_to_ix = {"SPANISH": 0, "ENGLISH": 1}

    def make_bow_vector(sentence):
        vec = torch.zeros(len(word_to_ix))
        for word in sentence:
            vec[word_to_ix[word]] += 1
        return vec.view(1, -1)

    model = _bow(torch)(2, len(word_to_ix))
    loss_function = torch.nn.NLLLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(bow_vec, target):
        model.zero_grad()
        loss = loss_function(model(bow_vec), target)
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(15):
        total = 0.0
        for instance, label in train:
            bow_vec = autograd.Variable(make_bow_vector(instance))
            target = autograd.Variable(torch.LongTensor([label_to_ix[label]]))
            total += step(bow_vec, target).item()
        res.losses.append(total)
    with torch.no_grad():
        probs = [model(make_bow_vector(s)).argmax(1).item() for s, _ in test]
    res.value(probs == [label_to_ix[lab] for _, lab in test])
    return res


def _ngram(torch):
    nn, F = torch.nn, torch.nn.functional

    class NGramLanguageModeler(nn.Module):
        def __init__(self, vocab_size, embedding_dim, context_size):
            super().__init__()
            self.embeddings = nn.Embedding(vocab_size, embedding_dim)
            self.linear1 = nn.Linear(context_size * embedding_dim, 128)
            self.linear2 = nn.Linear(128, vocab_size)

        def forward(self, inputs):
            embeds = self.embeddings(inputs).view((1, -1))
            out = F.relu(self.linear1(embeds))
            out = self.linear2(out)
            return F.log_softmax(out, dim=1)

    return NGramLanguageModeler


SONNET = (  # the script splits a string
    """When forty winters shall besiege thy brow,
And dig deep trenches in thy beauty's field,
Thy youth's proud livery so gazed on now,
Will be a totter'd weed of small worth held:
Then being asked, where all thy beauty lies,
Where all the treasure of thy lusty days;""".split())  # noqa: SIM905


@script("nlp/word_embeddings_tutorial")
def word_embeddings_tutorial(torch, compile) -> Result:
    """nn.Embedding looked up with LongTensor, an N-gram model trained per trigram with SGD,
    total_loss = torch.Tensor([0]) accumulating loss.data."""
    res = Result()
    autograd = torch.autograd
    torch.manual_seed(1)
    embeds = torch.nn.Embedding(2, 5)
    res.value(tuple(embeds(autograd.Variable(torch.LongTensor([0]))).shape))
    trigrams = [([SONNET[i], SONNET[i + 1]], SONNET[i + 2]) for i in range(len(SONNET) - 2)]
    vocab = sorted(set(SONNET))  # NOTE: the script iterates a set; sorted for repeatable runs
    word_to_ix = {word: i for i, word in enumerate(vocab)}
    loss_function = torch.nn.NLLLoss()
    model = _ngram(torch)(len(vocab), 10, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(context_var, target):
        model.zero_grad()
        log_probs = model(context_var)
        loss = loss_function(log_probs, target)
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(4):
        total_loss = torch.Tensor([0])
        for context, target in trigrams:
            context_var = autograd.Variable(torch.LongTensor([word_to_ix[w] for w in context]))
            loss = step(context_var, autograd.Variable(torch.LongTensor([word_to_ix[target]])))
            total_loss += loss.data
        res.losses.append(total_loss.item())
    return res


def _lstm_tagger(torch):
    nn, F = torch.nn, torch.nn.functional

    class LSTMTagger(nn.Module):
        def __init__(self, embedding_dim, hidden_dim, vocab_size, tagset_size):
            super().__init__()
            self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)
            self.lstm = nn.LSTM(embedding_dim, hidden_dim)
            self.hidden2tag = nn.Linear(hidden_dim, tagset_size)

        def forward(self, sentence):
            embeds = self.word_embeddings(sentence)
            lstm_out, _ = self.lstm(embeds.view(len(sentence), 1, -1))
            tag_space = self.hidden2tag(lstm_out.view(len(sentence), -1))
            return F.log_softmax(tag_space, dim=1)

    return LSTMTagger


@script("nlp/sequence_models_tutorial", max_compiles=6)
def sequence_models_tutorial(torch, compile) -> Result:
    """An LSTM part-of-speech tagger trained with NLLLoss and SGD(lr=0.1)."""
    res = Result()
    torch.manual_seed(1)
    training_data = [(["The", "dog", "ate", "the", "apple"], ["DET", "NN", "V", "DET", "NN"]),
                     (["Everybody", "read", "that", "book"], ["NN", "V", "DET", "NN"])]
    word_to_ix = {}
    for sent, _ in training_data:
        for word in sent:
            word_to_ix.setdefault(word, len(word_to_ix))
    tag_to_ix = {"DET": 0, "NN": 1, "V": 2}
    model = _lstm_tagger(torch)(6, 6, len(word_to_ix), len(tag_to_ix))
    loss_function = torch.nn.NLLLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    def step(sentence_in, targets):
        model.zero_grad()
        loss = loss_function(model(sentence_in), targets)
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(30):
        total = 0.0
        for sentence, tags in training_data:
            sentence_in = torch.tensor([word_to_ix[w] for w in sentence], dtype=torch.long)
            targets = torch.tensor([tag_to_ix[t] for t in tags], dtype=torch.long)
            total += step(sentence_in, targets).item()
        res.losses.append(total)
    return res


@script("nlp/advanced_tutorial")
def advanced_tutorial(torch, compile) -> Result:
    """The BiLSTM-CRF tagger's building blocks: a bidirectional LSTM, log-sum-exp forward
    algorithm over transitions, SGD with weight decay."""
    res = Result()
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(5, 2, num_layers=1, bidirectional=True)
    transitions = torch.nn.Parameter(torch.randn(3, 3))
    optimizer = torch.optim.SGD(list(lstm.parameters()) + [transitions], lr=0.01,
                                weight_decay=1e-4)
    x = torch.randn(4, 1, 5)

    def step(x):
        optimizer.zero_grad()
        out, _ = lstm(x)
        feats = out.view(4, -1)[:, :3]
        alpha = feats[0]
        for f in feats[1:]:
            alpha = torch.logsumexp(alpha.view(1, -1) + transitions + f.view(-1, 1), dim=1)
        loss = torch.logsumexp(alpha, dim=0) - feats.sum() * 0.1
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(10):
        res.losses.append(step(x).item())
    return res
