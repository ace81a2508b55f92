# What the module, the worker and redis/ share is declared once, in
# src/core/wa_streams.h: the names of the fields the normalizer sets itself.
# The normalizer writes no field name of its own that is not there, the
# state functions read no field that is neither there nor one of Meta's
# names that docs/events.md lists, and docs/events.md names every one.
use strict;
use warnings;
use Test::More;
use JSON::PP;

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

my $h = slurp('src/core/wa_streams.h');
my %header = map { $_ => 1 }
    ($h =~ /#define WA_FIELD_\w+\s+"(\w+)"/g),
    ($h =~ /\bX\((\w+)\)/g);
cmp_ok scalar(keys %header), '>', 40, scalar(keys %header)
    . ' field names in the header';

my %streams = map { $_ => 1 } $h =~ /WA_STREAM_(\w+)\s+"(\w+)"/g;
my $names = slurp('src/core/wa_streams.c');
is_deeply [ $names =~ /"(\w+)"/g ], [ qw(messages statuses account) ],
    'the stream names, in the order of wa_stream_t';

# the normalizer's own names: literals given to wa_add_*, in its files
my $c = join '', map { slurp("src/core/$_.c") }
    qw(wa_normalize wa_build wa_flatten);
my @written = $c =~ /wa_add_(?:path|json|text)\(bd,\s*"(\w+)"/g;
cmp_ok scalar(@written), '>', 30, scalar(@written) . ' names written';
my @undeclared = grep { !$header{$_} } @written;
is_deeply \@undeclared, [], 'every name the normalizer writes is declared';
unlike $c, qr/wa_add\w*\(bd,\s*"(?:kind|field|event_id|waba_id|ts|raw)"/,
    'the common fields through their macros';

# the names docs/events.md lists: the normalizer's and Meta's own
my $doc = slurp('docs/events.md');
my %doc = map { $_ => 1 } $doc =~ /`([a-z][a-z0-9_]*)`/g;
my @missing = grep { !$doc{$_} } sort keys %header;
is_deeply \@missing, [], 'docs/events.md names every declared field';

# and the schemas of the streams (docs/schema/) give each its place
my %schema;
for my $f (qw(event messages statuses account)) {
    my $j = JSON::PP->new->decode(slurp("docs/schema/$f.json"));
    my @todo = ($j);
    while (my $n = shift @todo) {
        if (ref $n eq 'HASH') {
            $schema{$_} = 1 for keys %{ $n->{properties} || {} };
            push @todo, values %$n;
        } elsif (ref $n eq 'ARRAY') {
            push @todo, @$n;
        }
    }
}
my @unschemed = grep { !$schema{$_} && $_ ne 'keyword' } sort keys %header;
is_deeply \@unschemed, [], 'docs/schema/ gives every declared field a type';
like slurp('redis/wa_state.lua'), qr/^local V = '(\d+)'/m,
    'redis/ writes a format version';
my ($lua_v) = slurp('redis/wa_state.lua') =~ /^local V = '(\d+)'/m;
my ($c_v) = $h =~ /#define WA_EVENTS_V\s+"(\d+)"/;
is $lua_v, $c_v, "the module, the worker and redis/ write the same v ($c_v)";
my $ev = JSON::PP->new->decode(slurp('docs/schema/event.json'));
is $ev->{'$defs'}{v}{const}, $c_v, 'and the schemas expect it';

# tools/check-contract, which checks every entry the suite leaves, refuses
# what breaks the contract and says why
my $ok = { v => 1, kind => 'message', field => 'messages', event_id => 'w.1',
           received_at => '1700000000123', raw => '{}', msg_id => 'w.1',
           type => 'image', media_id => '7', voice => 'true' };
my @cases = (
    [ 'wa:messages', $ok, undef ],
    [ 'wa:messages', { %$ok, shiny => 'x' }, qr/'shiny' was unexpected/ ],
    [ 'wa:messages', { %$ok, v => 2 }, qr/v: '1' was expected/ ],
    [ 'wa:messages', { %$ok, voice => 'yes' }, qr/voice: 'yes'/ ],
    [ 'wa:statuses', { %$ok, kind => 'status' }, qr/'media_id', 'type'/ ],
    [ 'wa:account', { %$ok, kind => 'error', raw => 'x' },
      qr/'msg_id' is not one of/ ],
    [ 'wa:account', { %$ok, kind => 'message_template_status_update',
                      event => 'APPROVED' }, undef ],
    [ 'wa:sent', { v => 1, outbox_id => '1-0' }, qr/is not valid under/ ],
    [ 'wa:media', { v => 1, event_id => 'e', msg_id => 'm', media_id => '7',
                    path => '/d/ab/' . ('a' x 64), mime_type => 'x/y',
                    size => '1', sha256 => 'a' x 64 }, undef ],
    [ 'wa:somethingnew', { v => 1 }, qr/no schema for a stream named/ ],
    [ 'wa:outbox', { anything => 1 }, undef ],
);
for my $c (@cases) {
    my ($stream, $fields, $want) = @$c;
    my $file = "/tmp/w60-contract-$$.jsonl";
    open my $fh, '>', $file or die;
    print $fh JSON::PP->new->encode({ stream => $stream, id => '1-1',
                                      fields => [ map { "$_" } %$fields ] }),
        "\n";
    close $fh;
    my $out = `tools/check-contract --file $file 2>&1`;
    my $rc = $? >> 8;
    unlink $file;
    my $what = "$stream " . join(',', map { "$_=$fields->{$_}" }
                                      grep { !$ok->{$_} || $ok->{$_} ne
                                             $fields->{$_} } sort keys %$fields);
    if ($want) {
        ok $rc == 1 && $out =~ $want, "check-contract refuses $what"
            or diag $out;
    } else {
        is $rc, 0, "check-contract accepts $what" or diag $out;
    }
}
open my $twice, '>', "/tmp/w60-twice-$$.jsonl" or die;
print $twice '{"stream":"wa:alerts","id":"1-1","fields":["v","1","v","1",'
    . '"severity","info","kind","k","subject","s","message","m"]}' . "\n";
close $twice;
like `tools/check-contract --file /tmp/w60-twice-$$.jsonl`,
    qr/field v twice/, 'check-contract refuses a field name given twice';
unlink "/tmp/w60-twice-$$.jsonl";

# what the state functions read of an event
my $lua = slurp('redis/wa_state.lua');
my %read = map { $_ => 1 } $lua =~ /\be\.([a-z_][a-z0-9_]*)/g;
cmp_ok scalar(keys %read), '>', 30, scalar(keys %read) . ' fields read';
my @unknown = grep { !$header{$_} && !$doc{$_} } sort keys %read;
is_deeply \@unknown, [], 'redis/wa_state.lua reads only declared or '
    . 'documented fields';

# the consumer leaves out and looks for fields by the header's names
my $w = slurp('src/worker/consume.c');
unlike $w, qr/"(?:raw|kind|text|keyword|received_at)"/,
    'the consumer names fields through the header';

done_testing;
