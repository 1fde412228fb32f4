// Prints the tokens Lucene's StandardTokenizer + LowerCaseFilter (Elasticsearch's standard
// analyzer) makes of each input record. Input: records separated by NUL on stdin. Output: one
// line per record, tokens separated by U+0001. Used by tests/lucene_standard.rs.
import java.io.*;
import java.nio.charset.StandardCharsets;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.standard.StandardTokenizer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;

public class LuceneTokens {
    public static void main(String[] args) throws IOException {
        String all = new String(System.in.readAllBytes(), StandardCharsets.UTF_8);
        PrintStream out = new PrintStream(new BufferedOutputStream(System.out), false, "UTF-8");
        for (String record : all.split("\u0000", -1)) {
            StandardTokenizer tokenizer = new StandardTokenizer();
            tokenizer.setReader(new StringReader(record));
            TokenStream stream = new LowerCaseFilter(tokenizer);
            CharTermAttribute term = stream.addAttribute(CharTermAttribute.class);
            stream.reset();
            StringBuilder line = new StringBuilder();
            boolean first = true;
            while (stream.incrementToken()) {
                if (!first) line.append('\u0001');
                line.append(term.toString());
                first = false;
            }
            stream.end();
            stream.close();
            out.print(line);
            out.print('\n');
        }
        out.flush();
    }
}
